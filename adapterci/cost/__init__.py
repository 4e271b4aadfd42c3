"""What a run costs and whether the adapter is worth it: the `cost` config section, the "worth it" figures of
the gate (`worth_it`) and the training cost guard (`guard`)."""
