-- timeexp: time and expense capture (DOMAIN.md section 1). Names are a contract.
-- Rates are stamped on each entry when it is entered, as PSA timecards do.
CREATE TABLE IF NOT EXISTS time_entries (
    entry_id      bigint PRIMARY KEY,
    resource_id   bigint NOT NULL,
    project_code  text NOT NULL,
    role          text NOT NULL,
    work_date     date NOT NULL,
    hours         numeric(5,2) NOT NULL CHECK (hours >= 0),
    billable      boolean NOT NULL,
    bill_rate     numeric(10,2) NOT NULL,
    cost_rate     numeric(10,2) NOT NULL,
    status        text NOT NULL CHECK (status IN ('draft', 'submitted', 'approved', 'rejected')),
    narrative     text,
    submitted_at  timestamptz,
    approved_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS expenses (
    expense_id    bigint PRIMARY KEY,
    resource_id   bigint NOT NULL,
    project_code  text NOT NULL,
    expense_date  date NOT NULL,
    category      text NOT NULL,
    amount        numeric(12,2) NOT NULL,
    currency      char(3) NOT NULL,
    billable      boolean NOT NULL,
    status        text NOT NULL CHECK (status IN ('submitted', 'approved', 'rejected')),
    approved_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
