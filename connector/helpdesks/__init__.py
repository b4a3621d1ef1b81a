"""Helpdesk adapters: one folder per helpdesk kind, the same files in each."""
