"""The executive page: the reporting store's figures as charts and tables, served by psmesh."""
