;; The contract every transaction of the `contracts` indexer runs, in wasmi inside the guest
;; (as alkanes runs its contracts). `run(state, seed, inputs, rounds)` sums the balances the
;; transaction's inputs carry (asking the indexer for each, through the `env.input` import),
;; mixes `seed` into the contract's state `rounds` times, and mints the low 16 bits of the new
;; state. It returns the new state and the total the transaction's outputs share.
(module
  (import "env" "input" (func $input (param i32) (result i64)))
  (func (export "run")
    (param $state i64) (param $seed i64) (param $inputs i32) (param $rounds i32)
    (result i64 i64)
    (local $i i32) (local $carried i64)
    (block $summed
      (loop $next
        (br_if $summed (i32.ge_u (local.get $i) (local.get $inputs)))
        (local.set $carried (i64.add (local.get $carried) (call $input (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.set $i (i32.const 0))
    (block $mixed
      (loop $round
        (br_if $mixed (i32.ge_u (local.get $i) (local.get $rounds)))
        (local.set $state
          (i64.mul (i64.xor (local.get $state) (local.get $seed))
                   (i64.const 0x9E3779B97F4A7C15)))
        (local.set $state
          (i64.xor (local.get $state) (i64.shr_u (local.get $state) (i64.const 29))))
        (local.set $seed (i64.rotl (local.get $seed) (i64.const 7)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $round)))
    (local.get $state)
    (i64.add (local.get $carried) (i64.and (local.get $state) (i64.const 0xffff)))))
