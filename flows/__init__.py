"""The order-to-cash domain: ledger models, money, the deal state machine and its steps."""
