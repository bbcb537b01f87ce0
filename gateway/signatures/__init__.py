"""Verification of signed documents (a court's signed judgment PDF): the per-type policy, the trust list,
the verification itself and the report kept beside the message."""
