"""Stream ingestion: rows from a message broker, pushed with ``FeatureStore.push`` (DESIGN G8).

* ``consumer.py``: the broker-independent loop (:func:`ingest`) and the interface a broker
  plugs into (:class:`MessageSource`, :class:`Delivery`);
* ``jetstream.py``: NATS JetStream, the broker ``featurestore ingest`` reads (extra
  ``stream``).

Delivery is at least once and never counts a row twice: a message is acknowledged only after
its rows are durably in the push log, and each row records its message id there, so a
message delivered again (after a crash, or when an acknowledgement was lost) is recognised
and not appended again.
"""
