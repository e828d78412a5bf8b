-- Embeddings' approximate indexes are now each model partition's own, chosen from its width and size and
-- built after a load commits (arc_halo.embeddings.build_index). The partitioned per-width HNSW indexes
-- (embeddings_hnsw_cosine_<width>) made every load build its share before the load could commit, and
-- covered only the widths listed in a variable. Dropping a partitioned index drops its partitions' shares
-- with it (a partitioned index cannot be dropped concurrently; the lock is held for the catalog change
-- only). Until `arc-halo model index --all` builds the new indexes, search is exact and says so.
do $$
declare
    index_name text;
begin
    if to_regclass('embeddings') is null then
        return;
    end if;
    for index_name in
        select quote_ident(index_class.relname)
        from pg_index as index
        join pg_class as index_class on index_class.oid = index.indexrelid
        join pg_am as am on am.oid = index_class.relam
        where index.indrelid = 'embeddings'::regclass and am.amname = 'hnsw'
    loop
        execute 'drop index ' || index_name;
    end loop;
end
$$;
