"""``featurestore import-feast``: read a Feast repo without Feast, write a featurestore repo.

``parse`` reads Feast's Python definition files with ``ast`` (nothing of the user's is run,
and Feast need not be installed), ``write`` turns what it found into readable repo files,
``adapters`` runs Feast's pandas and python on-demand functions on our one executor, and
``verify`` compares training frames built by Feast (in its own environment) and by us.
"""
