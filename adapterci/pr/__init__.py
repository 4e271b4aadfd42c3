"""Pull requests on the GPU runner: who may start a run (`authorize`) and what of a PR it takes (`materialize`).

The GPU workflow is defined by the default branch and runs the default branch's code; from a pull request it takes
only data (`allowlist`), at the head SHA a maintainer labeled. See docs/self-hosted-runner.md."""
