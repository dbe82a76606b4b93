"""The training run, one job per file; `lcnet_fast.train` is its command line and top-level
train(), `lcnet_fast.evaluate` reuses the data and scoring pieces.

    run.py              Run: setup (validate, then open the run directory), fit, test
    run_checkpoints.py  writing last/best checkpoints
    resume.py           --resume: the recorded config and restoring a run (plain or elastic)
    elastic.py          continuing under another world size or batch size
    optim.py            criterion, optimizer, learning-rate schedule
    model.py            the run's model config and label-graph initialisation
    data.py             datasets, transforms and loaders from the config
    sampler.py seeding.py  data order and seeds
    loop.py             one training epoch, scoring a split
    ema.py distributed.py progress.py report.py rundir.py cli.py

Only command-line code imports it (the train and evaluate drivers, the ablation, and every tool's
console entry for run_cli in cli.py); the inference API (`import lcnet_fast`, lcnet_fast.predict)
loads no engine module (tests/test_package_layering.py).
"""
