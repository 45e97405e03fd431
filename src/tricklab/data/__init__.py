"""Datasets as in-memory tensors: sources, scaling, index batches and the LightningDataModule."""
