"""The data checks of `adapterci check`: one module per concept, each a function
`check_<name>(corpus, cfg) -> CheckResult` over the loaded `Corpus`."""
