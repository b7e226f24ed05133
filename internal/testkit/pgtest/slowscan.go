package pgtest

// SlowScanSchema makes VALIDATE's scan take seconds on a few rows: the
// referenced key's unique index uses an operator class whose comparison
// sleeps a millisecond, so every child row costs a few milliseconds of
// index probing. Small data, a real multi-second scan under SHARE UPDATE
// EXCLUSIVE, not a lock wait. The foreign key to validate is
// slow_child (parent_id) REFERENCES slow_parent (id).
const SlowScanSchema = `
CREATE FUNCTION slow_cmp(int, int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM pg_sleep(0.001); RETURN btint4cmp($1, $2); END $$;
CREATE FUNCTION slow_eq(int, int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM pg_sleep(0.001); RETURN $1 = $2; END $$;
CREATE FUNCTION slow_lt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 < $2';
CREATE FUNCTION slow_le(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 <= $2';
CREATE FUNCTION slow_ge(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 >= $2';
CREATE FUNCTION slow_gt(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 > $2';
CREATE OPERATOR <<< (LEFTARG = int, RIGHTARG = int, FUNCTION = slow_lt);
CREATE OPERATOR <<= (LEFTARG = int, RIGHTARG = int, FUNCTION = slow_le);
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = slow_eq);
CREATE OPERATOR >>= (LEFTARG = int, RIGHTARG = int, FUNCTION = slow_ge);
CREATE OPERATOR >>> (LEFTARG = int, RIGHTARG = int, FUNCTION = slow_gt);
CREATE OPERATOR CLASS slow_int_ops FOR TYPE int USING btree AS
	OPERATOR 1 <<<, OPERATOR 2 <<=, OPERATOR 3 ===, OPERATOR 4 >>=, OPERATOR 5 >>>, FUNCTION 1 slow_cmp(int, int);
CREATE TABLE slow_parent (id int NOT NULL);
INSERT INTO slow_parent SELECT g FROM generate_series(1, 100) g;
CREATE UNIQUE INDEX slow_parent_id ON slow_parent (id slow_int_ops);
CREATE TABLE slow_child (id int, parent_id int);
INSERT INTO slow_child SELECT g, 1 + g % 100 FROM generate_series(1, 400) g;
ANALYZE slow_parent; ANALYZE slow_child;`
