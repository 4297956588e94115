-- crm: pipeline and commercial commitments (DOMAIN.md section 1). Names are a contract.
CREATE TABLE IF NOT EXISTS accounts (
    account_id          bigint PRIMARY KEY,
    name                text NOT NULL,
    industry            text,
    region              text NOT NULL CHECK (region IN ('NA', 'EMEA', 'APAC', 'LATAM')),
    currency            char(3) NOT NULL,
    payment_terms_days  int NOT NULL DEFAULT 30,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS opportunities (
    opportunity_id       bigint PRIMARY KEY,
    account_id           bigint NOT NULL REFERENCES accounts,
    name                 text NOT NULL,
    stage                text NOT NULL CHECK (stage IN ('prospecting', 'qualification', 'proposal', 'negotiation', 'closed_won', 'closed_lost')),
    probability          numeric(5,2) NOT NULL CHECK (probability BETWEEN 0 AND 100),
    amount               numeric(14,2) NOT NULL,
    currency             char(3) NOT NULL,
    service_line         text NOT NULL CHECK (service_line IN ('cloud_migration', 'data_analytics', 'security', 'erp_implementation', 'managed_services')),
    contract_type        text NOT NULL CHECK (contract_type IN ('time_and_materials', 'fixed_fee')),
    estimated_hours      numeric(10,2) NOT NULL,
    target_start_date    date,
    target_end_date      date,
    expected_close_date  date,
    closed_at            timestamptz,
    owner                text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS opportunity_lines (
    line_id         bigint PRIMARY KEY,
    opportunity_id  bigint NOT NULL REFERENCES opportunities,
    role            text NOT NULL CHECK (role IN ('project_manager', 'architect', 'senior_consultant', 'consultant', 'analyst')),
    skill           text NOT NULL CHECK (skill IN ('aws', 'azure', 'gcp', 'sap', 'salesforce', 'data_engineering', 'security')),
    hours           numeric(10,2) NOT NULL CHECK (hours >= 0),
    bill_rate       numeric(10,2) NOT NULL,
    est_cost_rate   numeric(10,2) NOT NULL,
    start_date      date NOT NULL,
    end_date        date NOT NULL
);

CREATE TABLE IF NOT EXISTS opportunity_milestones (
    milestone_id    bigint PRIMARY KEY,
    opportunity_id  bigint NOT NULL REFERENCES opportunities,
    name            text NOT NULL,
    amount          numeric(14,2) NOT NULL,
    planned_date    date NOT NULL
);

CREATE TABLE IF NOT EXISTS change_orders (
    change_order_id  bigint PRIMARY KEY,
    opportunity_id   bigint NOT NULL REFERENCES opportunities,
    description      text,
    amount_delta     numeric(14,2) NOT NULL,
    hours_delta      numeric(10,2) NOT NULL,
    status           text NOT NULL CHECK (status IN ('draft', 'approved', 'rejected')),
    approved_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
