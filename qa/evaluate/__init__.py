"""Benchmarks as a face of `qa`: `retrieval` (`qa eval piaf`, `qa eval report`: R@k, MRR, the answer
sentence, latency) and `answers` (`qa eval answers`: outcomes, precision, calibration). They print
figures; the tests assert behaviour."""
