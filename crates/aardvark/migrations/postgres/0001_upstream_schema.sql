-- Upstream Aardvark 0.3.5's schema, exactly as SQLAlchemy created it; a no-op on its databases.
CREATE TABLE IF NOT EXISTS aws_iam_object (
	id SERIAL NOT NULL,
	arn VARCHAR(2048),
	"lastUpdated" TIMESTAMP WITHOUT TIME ZONE,
	PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS ix_aws_iam_object_arn ON aws_iam_object (arn);
CREATE TABLE IF NOT EXISTS advisor_data (
	id SERIAL NOT NULL,
	item_id INTEGER NOT NULL,
	"lastAuthenticated" BIGINT,
	"serviceName" VARCHAR(128),
	"serviceNamespace" VARCHAR(64),
	"lastAuthenticatedEntity" TEXT,
	"totalAuthenticatedEntities" INTEGER,
	PRIMARY KEY (id),
	FOREIGN KEY(item_id) REFERENCES aws_iam_object (id)
);
CREATE INDEX IF NOT EXISTS ix_advisor_data_item_id ON advisor_data (item_id);
CREATE INDEX IF NOT EXISTS "ix_advisor_data_serviceName" ON advisor_data ("serviceName");
CREATE INDEX IF NOT EXISTS "ix_advisor_data_serviceNamespace" ON advisor_data ("serviceNamespace");
