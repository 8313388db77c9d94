"""The use cases, one module per actor (customer, staff, manager, clock): plain data in, ticket
changes and queued messages out. They know no messenger."""
