"""What closeloop talks to: Slack, IMAP/SMTP, DocuSign, the payment gateway, PDF rendering."""
