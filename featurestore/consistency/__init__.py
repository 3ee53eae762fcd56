"""Measured train/serve consistency (DESIGN G5): the feature log and the skew report.

* :mod:`~featurestore.consistency.log_schema`: what a logged request holds, column by column;
* :mod:`~featurestore.consistency.log_writer`: the bounded queue and the Parquet writer;
* :mod:`~featurestore.consistency.replay`: the log through the training path, cell by cell;
* :mod:`~featurestore.consistency.report`: the figures, as text and JSON;
* :mod:`~featurestore.consistency.html`: the report as one self-contained HTML page.
"""
