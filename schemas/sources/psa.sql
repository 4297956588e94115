-- psa: resource management (DOMAIN.md section 1). Names are a contract.
CREATE TABLE IF NOT EXISTS resources (
    resource_id            bigint PRIMARY KEY,
    name                   text NOT NULL,
    email                  text NOT NULL UNIQUE,
    role                   text NOT NULL,
    primary_skill          text NOT NULL,
    skills                 text[] NOT NULL DEFAULT '{}',
    region                 text NOT NULL,
    employment_type        text NOT NULL CHECK (employment_type IN ('employee', 'subcontractor')),
    cost_rate              numeric(10,2) NOT NULL,
    bill_rate              numeric(10,2) NOT NULL,
    weekly_capacity_hours  numeric(5,2) NOT NULL CHECK (weekly_capacity_hours >= 0),
    active                 boolean NOT NULL DEFAULT true,
    hired_on               date NOT NULL,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS assignments (
    assignment_id   bigint PRIMARY KEY,
    resource_id     bigint NOT NULL REFERENCES resources,
    project_code    text,
    opportunity_id  bigint,
    role            text NOT NULL,
    start_date      date NOT NULL,
    end_date        date NOT NULL,
    hours_per_week  numeric(5,2) NOT NULL CHECK (hours_per_week >= 0),
    status          text NOT NULL CHECK (status IN ('tentative', 'confirmed', 'cancelled')),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS time_off (
    time_off_id    bigint PRIMARY KEY,
    resource_id    bigint NOT NULL REFERENCES resources,
    start_date     date NOT NULL,
    end_date       date NOT NULL,
    hours_per_day  numeric(4,2) NOT NULL CHECK (hours_per_day >= 0),
    status         text NOT NULL CHECK (status IN ('requested', 'approved', 'cancelled'))
);
