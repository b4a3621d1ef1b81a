"""Flask edge that receives helpdesk webhooks."""
