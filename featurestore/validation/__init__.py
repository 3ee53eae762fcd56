"""Validated data (DESIGN G6): the adapter to Great Expectations.

- :mod:`featurestore.validation.gx`: imports GE on first use (the ``validation`` extra), an
  ephemeral data context (nothing on disk, no usage statistics), suites from their JSON.
- :mod:`featurestore.validation.run`: runs a view's suite on an Arrow table with GE.
- :mod:`featurestore.validation.result`: the summary of a run and where runs are kept.
- :mod:`featurestore.validation.gate`: what a failed run does (block or warn), for
  materialization windows and pushed rows.
- :mod:`featurestore.validation.frame`: a training frame's feature columns checked against
  their views' suites (``get_training_frame(..., validate=True)``).

Nothing here is imported by ``import featurestore``; GE itself is imported only when a suite
runs, so serving and training frames never load it.
"""
