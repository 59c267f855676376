"""The pipeline worker: its parts (``parts``), composed once (``compose``), run by the faust entry
point (``streams.app``) or the confluent one (``confluent_main``)."""
