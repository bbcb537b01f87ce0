"""What operators see and do: queue overview, parked messages, partners, overdue and stuck documents.

Used by the console (``gateway/web/console``) and by ``run.py status|parking``; no HTTP here.
"""
