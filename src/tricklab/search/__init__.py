"""Hyperparameter search on Optuna (``hparams_search=optuna``): the search space, the study, the asynchronous
loop that asks for a trial whenever a worker is free, the link from a job to its trial, and the search report."""
