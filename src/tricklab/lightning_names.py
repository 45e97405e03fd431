"""The values Lightning's Trainer accepts for its named settings, copied so that they are checked before
Lightning is imported (importing it takes seconds; a bad ``trainer.precision`` used to fail only then).

tests/test_internals.py compares each list with Lightning's own and fails when Lightning changes one.
"""

# lightning_fabric.connector: _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS and _PRECISION_INPUT_INT.
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", "64", "32", "16", "bf16", 64, 32, 16)
# pytorch_lightning.accelerators.AcceleratorRegistry, plus the two names the Trainer adds (auto, gpu).
ACCELERATORS = ("auto", "gpu", "cpu", "cuda", "mps", "tpu")
# pytorch_lightning.strategies.StrategyRegistry, plus auto.
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_false", "ddp_find_unused_parameters_true", "ddp_fork",
              "ddp_fork_find_unused_parameters_false", "ddp_fork_find_unused_parameters_true", "ddp_notebook",
              "ddp_notebook_find_unused_parameters_false", "ddp_notebook_find_unused_parameters_true", "ddp_spawn",
              "ddp_spawn_find_unused_parameters_false", "ddp_spawn_find_unused_parameters_true", "deepspeed",
              "deepspeed_stage_1", "deepspeed_stage_2", "deepspeed_stage_2_offload", "deepspeed_stage_3",
              "deepspeed_stage_3_offload", "deepspeed_stage_3_offload_nvme", "fsdp", "fsdp_cpu_offload",
              "single_device", "single_tpu", "single_xla", "xla", "xla_debug")
