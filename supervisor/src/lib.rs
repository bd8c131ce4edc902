//! Reference control plane (placeholder until issue 3 lands).
