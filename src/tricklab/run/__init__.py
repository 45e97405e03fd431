"""One run: its pre-flight checks, its context, the Trainer and machine set-up, prepare, fit, test and its record
(metrics.json), resuming one cut short, and the job Hydra runs (tricklab.train holds the task function)."""
