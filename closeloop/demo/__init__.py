"""`closeloop demo`: a realistic deal driven through the whole loop."""
