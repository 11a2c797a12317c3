"""Training data: simulated maps from atomic models, shards, splits by entry id, the DataModule.

- :mod:`locres.data.simulated`: the pipeline that turns a model into standardised training boxes;
- :mod:`locres.data.shards`: the data_prep shard format (one ``.npz`` per model + JSON manifests);
- :mod:`locres.data.splits`: the fixed train/val/test split by entry id;
- :mod:`locres.data.datamodule`: the LightningDataModule (imports torch and lightning; import it
  explicitly).
"""
