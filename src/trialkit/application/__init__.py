"""The application layer: one entry per use case, between the faces and the services.

The CLI, the TUI, the browser gate, the demo and the Gherkin steps call it; it opens the
database, opens the read or write transaction (:mod:`trialkit.application.unit_of_work`),
runs the service (which checks the permission and records the audit event in that
transaction) and commits or rolls back. Faces parse input and render output; they never
import :mod:`trialkit.store`.

Kept light on import: nothing here loads SQLAlchemy until a database is used."""
