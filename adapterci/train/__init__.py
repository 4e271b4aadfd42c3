"""The train stage: `run.train(cfg) -> TrainResult` and the adapter cache key `provenance.inputs_fingerprint`.
Heavy libraries (torch, transformers, TRL, PEFT) load only when training starts."""
