"""Read models (DESIGN §11 "Read models are disposable"): the projector folds the
event store's tenant feeds into tables the analytics API reads; any of them can be
dropped and rebuilt by replay, and the write path never reads them."""
