"""One runner per kind of model a recipe trains: build its data and task, train, export the
model folder through its kind (``kinds/``) with a card, and measure what the card states.

Every runner is ``run(recipe, run_dir, *, resume, data_dir, command) -> Path`` (the exported
folder); ``command`` is what the user typed, which the card records to reproduce the model.
"""
