"""Pieces of the training driver, one job per file: seeding, data order, EMA, distributed helpers,
model construction, data construction, the step loop, logging. `lcnet_fast.train` wires them up."""
