"""Typed contracts between stages: the dataset manifest, checkpoint metadata and every command's summary, each a
dataclass written as a plain dict and read back with validation (:mod:`worldmodel.contracts.records`)."""
