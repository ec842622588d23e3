"""The audit log: one record per API request, allowed or denied."""
