"""What the ``regime`` commands do, one module per group of commands; the parser and
its dispatch are :mod:`regime_model.cli`. Models are imported inside the functions that
fit them, so ``regime --help`` and the data commands start without PyMC."""
