"""The commands' hydra configs (``<command>.yaml``, ``<command>_preset/``, groups such as ``env/`` and ``planner/``),
installed as ``worldmodel.configs``; :data:`worldmodel.config.CONFIG_DIR` is this folder."""
