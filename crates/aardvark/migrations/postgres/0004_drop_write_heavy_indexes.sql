-- Upstream's indexes on advisor_data(item_id), ("serviceName") and ("serviceNamespace") serve no
-- query: lookups by principal use uq_advisor_data_item_namespace (item_id first), and nothing
-- searches by service name. Kept, they made each stored row update three more b-trees and
-- slowed ingest about fivefold (measured). The tables themselves are unchanged.
DROP INDEX IF EXISTS ix_advisor_data_item_id;
DROP INDEX IF EXISTS "ix_advisor_data_serviceName";
DROP INDEX IF EXISTS "ix_advisor_data_serviceNamespace";
