"""ITCH 5.0: message types (:mod:`.messages`), the binary codec (:mod:`.codec`), file framings
(:mod:`.framing`) and file statistics (:mod:`.stats`). Pure Python, no Flink.
"""
