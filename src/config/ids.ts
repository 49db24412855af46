/** Id formats, free of Node imports so workflow code can validate with them too. */
export const SITE_ID = /^[a-z][a-z0-9-]{0,30}$/;
/** Source and member ids end up in SQL values and workflow ids, never in identifiers. */
export const OBJECT_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/;
