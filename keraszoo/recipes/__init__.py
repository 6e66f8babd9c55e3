"""The recipes: each module is a typed config (a ``TrainConfig``) and a ``main(config)`` that trains,
records and exports. ``recipes/<name>.py`` is the command line of ``keraszoo.recipes.<name>``;
study runners (``keraszoo.training.study``) import the modules and call ``main`` over a grid.

Importing a recipe module loads only its config (no Keras, no TensorFlow), so ``--help`` is instant.
"""
