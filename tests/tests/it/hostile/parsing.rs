//! Bodies that cost the machine before authorization: YAML alias bombs, deep or huge documents, imports.
