-- The databases of the mesh: four sources and the reporting store.
CREATE DATABASE crm;
CREATE DATABASE psa;
CREATE DATABASE timeexp;
CREATE DATABASE erp;
CREATE DATABASE reporting;
