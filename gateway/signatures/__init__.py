"""Signatures on the documents the gateway exchanges: a court's signed judgment PDF verified on arrival (the
per-type policy, the trust list, the verification and the report kept beside the message), and the
documents sent on an enforcement office's behalf signed on departure (a detached JWS over the canonical
JSON, with the office's certificate chain)."""
