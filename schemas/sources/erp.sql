-- erp: project accounting, billing, receivables (DOMAIN.md section 1). Names are a contract.
-- The mesh writes projects, billing_milestones (creation only) and billing_events;
-- people at the firm change the rest. No foreign keys here: the ERP sink writes a
-- project and its billing events from different topics, which may arrive in
-- either order, and a replay must never be refused.
CREATE TABLE IF NOT EXISTS projects (
    project_code       text PRIMARY KEY,
    opportunity_id     bigint NOT NULL UNIQUE,
    account_id         bigint NOT NULL,
    name               text NOT NULL,
    service_line       text NOT NULL,
    contract_type      text NOT NULL,
    currency           char(3) NOT NULL,
    budget_amount      numeric(14,2) NOT NULL,
    budget_hours       numeric(10,2) NOT NULL,
    start_date         date,
    end_date           date,
    billing_frequency  text NOT NULL,
    revenue_method     text NOT NULL,
    cost_center        text NOT NULL,
    status             text NOT NULL CHECK (status IN ('active', 'on_hold', 'closed')),
    won_at             timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS billing_milestones (
    milestone_id  bigint PRIMARY KEY,
    project_code  text NOT NULL,
    name          text NOT NULL,
    amount        numeric(14,2) NOT NULL,
    planned_date  date NOT NULL,
    status        text NOT NULL CHECK (status IN ('planned', 'completed', 'invoiced')),
    completed_at  timestamptz
);

CREATE TABLE IF NOT EXISTS billing_periods (
    period_id   bigint PRIMARY KEY,
    start_date  date NOT NULL,
    end_date    date NOT NULL,
    status      text NOT NULL CHECK (status IN ('open', 'closed')),
    closed_at   timestamptz
);

CREATE TABLE IF NOT EXISTS billing_events (
    billing_event_id  text PRIMARY KEY,
    project_code      text NOT NULL,
    trigger_type      text NOT NULL CHECK (trigger_type IN ('milestone_completed', 'period_close')),
    period_id         bigint,
    milestone_id      bigint,
    amount            numeric(14,2) NOT NULL,
    currency          char(3) NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS invoices (
    invoice_id        bigint PRIMARY KEY,
    project_code      text NOT NULL,
    billing_event_id  text,
    amount            numeric(14,2) NOT NULL,
    currency          char(3) NOT NULL,
    status            text NOT NULL CHECK (status IN ('draft', 'issued', 'paid', 'void')),
    issued_on         date,
    due_on            date,
    paid_on           date,
    written_off       numeric(14,2) NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
