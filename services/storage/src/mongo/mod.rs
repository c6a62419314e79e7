//! stub
use crate::location::Location; use crate::error::Result;
pub struct MongoStore;
impl MongoStore { pub async fn open(_l: &Location) -> Result<crate::store::MemoryStore> { Ok(crate::store::MemoryStore::new()) } }
