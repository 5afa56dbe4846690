"""Where a volume can go, computed from pools' capability reports: pool states, the capacity formula,
the extra-spec grammar, filters and weighers. Pure: it reads settings and records only (no database,
no messaging), so the scheduler service and the domain (extend's room check, get_pools filters) share it."""
