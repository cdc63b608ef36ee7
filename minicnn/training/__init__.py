"""Running a model over data: fit, evaluate, predict, train_on_batch (see trainer.py).

    data.py      input checks, the epoch's order, batches (memory-bounded chunks for inference)
    steps.py     one training step (loss, backward, update) and the host epoch loop
    graphed.py   the GPU strategy: device-resident data and CUDA-graph steps
    trainer.py   the Trainer that ``model.fit`` and friends delegate to
"""
