"""Signatures on the documents the gateway exchanges on an enforcement office's behalf."""
