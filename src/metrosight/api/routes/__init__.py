"""The API's routers (thin: each calls one store or service method, which applies the rules and the audit)."""
