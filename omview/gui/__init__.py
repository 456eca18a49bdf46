"""Qt pieces shared by the suite's apps."""
