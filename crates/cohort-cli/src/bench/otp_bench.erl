%% The OTP side of `cohort bench --vs-otp`: one repetition of a scenario of
%% docs/BENCHMARKS.md on OTP `pg` and `global`, at the sizes given, printed
%% as one line `RESULT key=value ...` with the metric keys of `cohort bench`.
%%
%%   erl -noshell -pa DIR -run otp_bench main pg_join distinct GROUPS N
%%   erl -noshell -pa DIR -run otp_bench main pg_join shared single N
%%   erl -noshell -pa DIR -run otp_bench main pg_join shared batch N B
%%   erl -noshell -pa DIR -run otp_bench main global_reg N
%%   erl -noshell -pa DIR -run otp_bench main netsplit NODES K
%%   erl -noshell -pa DIR -run otp_bench main nodedown NAMES MEMBERS
%%
%% The controller (this VM) is not a cluster member: each cluster node is an
%% OTP `peer' (OTP 25+) driven over its stdin/stdout (`connection =>
%% standard_io'), so `global' and `pg' see exactly the cluster's nodes and a
%% node cut off from the others can still be driven. Nodes are named
%% NAME@127.0.0.1 and meshed over loopback TCP, then `global:sync()'.
%%
%% Each operation is timed inside the node that performs it with
%% os:system_time(nanosecond), comparable between VMs of one host.
%% Convergence is seen by a poller process on each observing node that
%% checks a condition, sleeping max(1 ms, 4 x the cost of one check) between
%% checks. Memory per entry = growth of the registry's ETS tables plus its
%% server's heap after a forced GC, divided by the entry count.
-module(otp_bench).

-export([main/1]).
%% executed on peers
-export([wait_mesh/1, spawn_idle/2, start_poller/3, collect/2, mem/0,
         pg_join_run/4, pg_members_bench/2,
         global_reg_seq/4, global_reg_conc/5, global_unreg_seq/3,
         global_unreg_conc/4, whereis_bench/3,
         isolate/1, heal/1, os_pid/0,
         pg_total/1, global_count/0, pg_join_groups/3]).

-define(INF, infinity).
-define(POLL_MS, 600000).

%%====================================================================
%% entry
%%====================================================================
main(Args) ->
    try
        R = run(Args),
        io:format("RESULT ~s~n", [fmt(R)]),
        halt(0)
    catch C:E:St ->
            io:format("FAILED ~p:~p ~p~n", [C, E, St]),
            halt(1)
    end.

run(["pg_join", "distinct", G, N]) -> pg_join(3, int(N), {distinct, int(G)}, single);
run(["pg_join", "shared", "single", N]) -> pg_join(3, int(N), shared, single);
run(["pg_join", "shared", "batch", N, B]) -> pg_join(3, int(N), shared, {batch, int(B)});
run(["global_reg", N]) -> global_reg(3, int(N));
run(["netsplit", Nodes, K]) -> netsplit(int(Nodes), int(K));
run(["nodedown", X, Y]) -> nodedown(3, int(X), int(Y));
run(Other) -> error({unknown_scenario, Other}).

int(S) -> list_to_integer(S).

fmt(KVs) ->
    string:join([io_lib:format("~s=~s", [K, fmtv(V)]) || {K, V} <- KVs], " ").
fmtv(V) when is_float(V) -> float_to_list(V, [{decimals, 3}]);
fmtv(V) -> io_lib:format("~p", [V]).

now_ns() -> os:system_time(nanosecond).
%% iterations of a read loop: 1,000,000 at reference sizes, fewer at tiny ones
iters(N) -> max(10000, min(1000000, 100 * N)).
ms(Ns) -> Ns / 1.0e6.
ops(N, Ns) -> N / (max(Ns, 1) / 1.0e9).

%%====================================================================
%% cluster management (controller side)
%%====================================================================
ebin() -> filename:dirname(code:which(?MODULE)).

start_cluster(N) ->
    Uniq = os:getpid() ++ "x" ++ integer_to_list(erlang:unique_integer([positive])),
    Peers = [begin
                 Name = list_to_atom("otpb" ++ Uniq ++ "n" ++ integer_to_list(I)),
                 {ok, P, Node} = peer:start(#{name => Name,
                                              host => "127.0.0.1",
                                              longnames => true,
                                              connection => standard_io,
                                              args => ["-kernel", "start_pg", "true",
                                                       "-pa", ebin()]}),
                 {P, Node}
             end || I <- lists:seq(1, N)],
    Nodes = [Nd || {_, Nd} <- Peers],
    [true = pc(P, net_kernel, connect_node, [O]) || {P, Me} <- Peers, O <- Nodes, O =/= Me],
    [ok = pc(P, ?MODULE, wait_mesh, [Nodes]) || {P, _} <- Peers],
    Peers.

stop_cluster(Peers) ->
    [catch peer:stop(P) || {P, _} <- Peers],
    ok.

pc(P, M, F, A) -> peer:call(P, M, F, A, ?INF).

poll_on(Peers, Tag, Spec) ->
    [ok = pc(P, ?MODULE, start_poller, [Tag, Spec, ?POLL_MS]) || {P, _} <- Peers], ok.
collect_on(Peers, Tag) ->
    [pc(P, ?MODULE, collect, [Tag, ?POLL_MS + 60000]) || {P, _} <- Peers].

seen_max([]) -> 0;
seen_max(Res) -> lists:max([T || {ok, T, _} <- Res]).
all_ok(Res) -> lists:all(fun({ok, _, _}) -> true; (_) -> false end, Res).

%%====================================================================
%% peer-side helpers
%%====================================================================
os_pid() -> os:getpid().

wait_mesh(Nodes) ->
    Want = lists:sort(Nodes),
    case lists:sort([node() | nodes()]) of
        Want -> global:sync(), ok;
        _ -> timer:sleep(5), wait_mesh(Nodes)
    end.

idle() -> receive stop -> ok end.

spawn_idle(Key, N) ->
    Pids = list_to_tuple([spawn(fun idle/0) || _ <- lists:seq(1, N)]),
    persistent_term:put({otp_bench, Key}, Pids),
    ok.
pids(Key) -> persistent_term:get({otp_bench, Key}).

start_poller(Tag, Spec, TimeoutMs) ->
    Deadline = now_ns() + TimeoutMs * 1000000,
    Self = self(),
    Pid = spawn(fun() ->
                        register(Tag, self()),
                        Self ! {registered, self()},
                        poll(Spec, Deadline)
                end),
    receive {registered, Pid} -> ok end.

poll(Spec, Deadline) ->
    C0 = now_ns(),
    case check(Spec) of
        true ->
            finish({ok, now_ns(), verify(Spec)});
        false ->
            C1 = now_ns(),
            case C1 > Deadline of
                true -> finish({timeout, C1, verify(Spec)});
                false ->
                    SleepMs = max(1, (4 * (C1 - C0)) div 1000000),
                    receive after SleepMs -> poll(Spec, Deadline) end
            end
    end.

finish(Res) ->
    receive {collect, From, Ref} -> From ! {Ref, Res} end.

collect(Tag, Timeout) ->
    Ref = make_ref(),
    Tag ! {collect, self(), Ref},
    receive {Ref, R} -> R after Timeout -> collect_timeout end.

check({'and', Specs}) -> lists:all(fun check/1, Specs);
check({pg_nonempty, Scope, G}) -> pg:get_members(Scope, G) =/= [];
check({pg_total, Scope, N}) -> pg_total(Scope) =:= N;
check({pg_groups, Scope, N}) -> ets:info(Scope, size) =:= N;
check({global_name, Name}) -> global:whereis_name(Name) =/= undefined;
check({global_count, N}) -> global_count() =:= N.

verify({'and', Specs}) -> [verify(S) || S <- Specs];
verify({pg_nonempty, Scope, _}) -> {pg_total, pg_total(Scope)};
verify({pg_total, Scope, _}) -> {pg_total, pg_total(Scope)};
verify({pg_groups, Scope, _}) -> {pg_groups, ets:info(Scope, size), pg_total(Scope)};
verify({global_name, _}) -> {global_count, global_count()};
verify({global_count, _}) -> {global_count, global_count()}.

pg_total(Scope) ->
    ets:foldl(fun({_G, All, _Local}, Acc) -> Acc + length(All) end, 0, Scope).

global_count() -> ets:info(global_names, size).

%% bytes held by pg and by global (ETS tables + server heap after GC)
mem() ->
    WS = erlang:system_info(wordsize),
    TabMem = fun(Ts) -> lists:sum([case ets:info(T, memory) of
                                        undefined -> 0;
                                        M -> M * WS
                                    end || T <- Ts]) end,
    ProcMem = fun(Names) ->
                      lists:sum([case whereis(Nm) of
                                     undefined -> 0;
                                     P -> erlang:garbage_collect(P),
                                          {memory, M} = process_info(P, memory), M
                                 end || Nm <- Names])
              end,
    GlobalTabs = [T || T <- ets:all(), is_atom(T),
                       lists:prefix("global", atom_to_list(T))],
    #{pg => TabMem([pg]) + ProcMem([pg]),
      global => TabMem(GlobalTabs) + ProcMem([global_name_server])}.

%%====================================================================
%% pg_join, pg_join_shared
%%====================================================================
group({distinct, G}, I) -> {g, I rem G};
group(shared, _) -> shared.

pg_join_run(Key, Mode, How, Sentinel) ->
    Pids = pids(Key),
    N = tuple_size(Pids),
    T0 = now_ns(),
    case How of
        single -> pg_join_single(Pids, Mode, 1, N);
        {batch, B} -> pg_join_batch(Pids, 1, N, B)
    end,
    T1 = now_ns(),
    %% one pg server, one distribution channel: seeing the sentinel means
    %% every join before it has arrived
    ok = pg:join(Sentinel, spawn(fun idle/0)),
    {T0, T1}.

pg_join_single(_, _, I, N) when I > N -> ok;
pg_join_single(Pids, Mode, I, N) ->
    ok = pg:join(group(Mode, I), element(I, Pids)),
    pg_join_single(Pids, Mode, I + 1, N).

pg_join_batch(_, I, N, _) when I > N -> ok;
pg_join_batch(Pids, I, N, B) ->
    Last = min(N, I + B - 1),
    ok = pg:join(shared, [element(J, Pids) || J <- lists:seq(I, Last)]),
    pg_join_batch(Pids, Last + 1, N, B).

%% get_members ns/op of one group
pg_members_bench(G, Iters) ->
    _ = pg:get_members(G),
    T0 = erlang:monotonic_time(nanosecond),
    gm(Iters, G),
    (erlang:monotonic_time(nanosecond) - T0) / Iters.
gm(0, _) -> ok;
gm(I, G) ->
    _ = pg:get_members(G),
    gm(I - 1, G).

pg_join(NNodes, N, Mode, How) ->
    Peers = [{P1, _} | Others] = start_cluster(NNodes),
    [{P2, _} | _] = Others,
    ok = pc(P1, ?MODULE, spawn_idle, [pids, N]),
    Mem0 = [pc(P, ?MODULE, mem, []) || {P, _} <- Peers],
    Sentinel = {sentinel, erlang:unique_integer([positive])},
    poll_on(Others, pgconv, {pg_nonempty, pg, Sentinel}),
    {T0, T1} = pc(P1, ?MODULE, pg_join_run, [pids, Mode, How, Sentinel]),
    Res = collect_on(Others, pgconv),
    true = all_ok(Res),
    Expected = N + 1,
    [Expected = V || {ok, _, {pg_total, V}} <- Res],
    Mem1 = [pc(P, ?MODULE, mem, []) || {P, _} <- Peers],
    [MemL, MemR | _] = [maps:get(pg, M1) - maps:get(pg, M0) || {M0, M1} <- lists:zip(Mem0, Mem1)],
    {G, Iters} = case Mode of
                     {distinct, _} -> {{g, 0}, iters(N)};
                     shared -> {shared, max(20, min(20000, 20000000 div N))}
                 end,
    GmL = pc(P1, ?MODULE, pg_members_bench, [G, Iters]),
    GmR = pc(P2, ?MODULE, pg_members_bench, [G, Iters]),
    GmMiss = pc(P1, ?MODULE, pg_members_bench, [nonexistent_group, iters(N)]),
    stop_cluster(Peers),
    Conv = seen_max(Res),
    [{join_ops_per_s, ops(N, T1 - T0)},
     {conv_all_nodes_ms_from_start, ms(Conv - T0)},
     {conv_lag_after_last_join_ms, ms(Conv - T1)},
     {mem_bytes_per_member_local, MemL / N},
     {mem_bytes_per_member_remote, MemR / N},
     {members_ns_local, GmL},
     {members_ns_remote, GmR},
     {members_missing_ns, GmMiss}].

%%====================================================================
%% global_reg
%%====================================================================
global_reg_seq(Key, Prefix, From, To) ->
    Pids = pids(Key),
    T0 = now_ns(),
    [yes = global:register_name({Prefix, I}, element(I, Pids)) || I <- lists:seq(From, To)],
    {T0, now_ns()}.

global_reg_conc(Key, Prefix, From, To, C) ->
    Pids = pids(Key),
    Me = self(),
    Is = lists:seq(From, To),
    Slices = [[I || I <- Is, I rem C =:= W] || W <- lists:seq(0, C - 1)],
    Ws = [spawn_link(fun() ->
                             receive go -> ok end,
                             [yes = global:register_name({Prefix, I}, element(I, Pids)) || I <- Sl],
                             Me ! {done, self()}
                     end) || Sl <- Slices],
    T0 = now_ns(),
    [W ! go || W <- Ws],
    [receive {done, W} -> ok end || W <- Ws],
    {T0, now_ns()}.

global_unreg_seq(Prefix, From, To) ->
    T0 = now_ns(),
    [_ = global:unregister_name({Prefix, I}) || I <- lists:seq(From, To)],
    {T0, now_ns()}.

global_unreg_conc(Prefix, From, To, C) ->
    Me = self(),
    Is = lists:seq(From, To),
    Slices = [[I || I <- Is, I rem C =:= W] || W <- lists:seq(0, C - 1)],
    Ws = [spawn_link(fun() ->
                             receive go -> ok end,
                             [_ = global:unregister_name({Prefix, I}) || I <- Sl],
                             Me ! {done, self()}
                     end) || Sl <- Slices],
    T0 = now_ns(),
    [W ! go || W <- Ws],
    [receive {done, W} -> ok end || W <- Ws],
    {T0, now_ns()}.

whereis_bench(Prefix, N, Iters) ->
    T0 = erlang:monotonic_time(nanosecond),
    wb(Iters, Prefix, N),
    (erlang:monotonic_time(nanosecond) - T0) / Iters.
wb(0, _, _) -> ok;
wb(I, Prefix, N) ->
    _ = global:whereis_name({Prefix, (I rem N) + 1}),
    wb(I - 1, Prefix, N).

global_reg(NNodes, N) ->
    Peers = [{P1, _} | Others] = start_cluster(NNodes),
    [{P2, _} | _] = Others,
    ok = pc(P1, ?MODULE, spawn_idle, [pids, N]),
    Mem0 = [pc(P, ?MODULE, mem, []) || {P, _} <- Peers],
    %% (a) one caller
    poll_on(Others, gseq, {global_count, N}),
    {T0, T1} = pc(P1, ?MODULE, global_reg_seq, [pids, s, 1, N]),
    Res = collect_on(Others, gseq),
    true = all_ok(Res),
    Mem1 = [pc(P, ?MODULE, mem, []) || {P, _} <- Peers],
    [MemL, MemR | _] = [maps:get(global, M1) - maps:get(global, M0)
                        || {M0, M1} <- lists:zip(Mem0, Mem1)],
    WL = pc(P1, ?MODULE, whereis_bench, [s, N, iters(N)]),
    WR = pc(P2, ?MODULE, whereis_bench, [s, N, iters(N)]),
    WMiss = pc(P1, ?MODULE, whereis_bench, [nosuch, N, iters(N)]),
    poll_on(Others, gunreg, {global_count, 0}),
    {U0, U1} = pc(P1, ?MODULE, global_unreg_seq, [s, 1, N]),
    true = all_ok(collect_on(Others, gunreg)),
    %% (b) ten callers
    poll_on(Others, gconc, {global_count, N}),
    {C0, C1} = pc(P1, ?MODULE, global_reg_conc, [pids, c, 1, N, 10]),
    true = all_ok(collect_on(Others, gconc)),
    {_, _} = pc(P1, ?MODULE, global_unreg_conc, [c, 1, N, 10]),
    poll_on(Peers, gconcu, {global_count, 0}),
    true = all_ok(collect_on(Peers, gconcu)),
    %% (c) one caller on each node at once
    Per = N div NNodes,
    [ok = pc(P, ?MODULE, spawn_idle, [pids2, Per]) || {P, _} <- Peers],
    poll_on(Peers, gall, {global_count, Per * NNodes}),
    Self = self(),
    Ws = [spawn_link(fun() ->
                             R = pc(P, ?MODULE, global_reg_seq, [pids2, {x, Idx}, 1, Per]),
                             Self ! {xdone, Idx, R}
                     end) || {Idx, {P, _}} <- lists:zip(lists:seq(1, NNodes), Peers)],
    XR = [receive {xdone, Idx, R} -> R end || Idx <- lists:seq(1, length(Ws))],
    true = all_ok(collect_on(Peers, gall)),
    X0 = lists:min([A || {A, _} <- XR]),
    X1 = lists:max([B || {_, B} <- XR]),
    stop_cluster(Peers),
    [{reg_seq_ops_per_s, ops(N, T1 - T0)},
     {visible_lag_after_last_return_ms, ms(max(0, seen_max(Res) - T1))},
     {mem_bytes_per_name_local, MemL / N},
     {mem_bytes_per_name_remote, MemR / N},
     {whereis_ns_local, WL},
     {whereis_ns_remote, WR},
     {whereis_missing_ns, WMiss},
     {unreg_seq_ops_per_s, ops(N, U1 - U0)},
     {reg_conc10_ops_per_s, ops(N, C1 - C0)},
     {reg_1proc_per_node_ops_per_s, ops(Per * NNodes, X1 - X0)}].

%%====================================================================
%% netsplit: cut the last node (C) off from all others, then heal
%%====================================================================
-define(BLOCK_COOKIE, otp_bench_split_block_cookie).

isolate(Others) ->
    T0 = now_ns(),
    [erlang:set_cookie(O, ?BLOCK_COOKIE) || O <- Others],
    [erlang:disconnect_node(O) || O <- Others],
    wait_nodes_empty(),
    T0.
wait_nodes_empty() ->
    case nodes() of [] -> ok; _ -> timer:sleep(1), wait_nodes_empty() end.

heal(Others) ->
    Cookie = erlang:get_cookie(),
    [erlang:set_cookie(O, Cookie) || O <- Others],
    T0 = now_ns(),
    Rs = [net_kernel:connect_node(O) || O <- Others],
    {T0, now_ns(), Rs}.

netsplit(NNodes, K) ->
    Kc = max(1, K div 10),
    Peers = start_cluster(NNodes),
    [{PA, _} | _] = Peers,
    {PC, NC} = lists:last(Peers),
    Maj = lists:droplast(Peers),
    MajNodes = [N || {_, N} <- Maj],
    [begin
         ok = pc(P, ?MODULE, spawn_idle, [pre, K]),
         ok = pc(P, ?MODULE, spawn_idle, [split, K]),
         ok = pc(P, ?MODULE, spawn_idle, [clash, Kc])
     end || P <- [PA, PC]],
    {_, _} = pc(PA, ?MODULE, global_reg_seq, [pre, pre_a, 1, K]),
    {_, _} = pc(PC, ?MODULE, global_reg_seq, [pre, pre_c, 1, K]),
    ok = pc(PA, ?MODULE, pg_join_groups, [pre, g, 100]),
    ok = pc(PC, ?MODULE, pg_join_groups, [pre, g, 100]),
    poll_on(Peers, pre, {'and', [{global_count, 2 * K}, {pg_total, pg, 2 * K}]}),
    true = all_ok(collect_on(Peers, pre)),
    poll_on(Maj, splitmaj, {'and', [{global_count, K}, {pg_total, pg, K}]}),
    poll_on([{PC, NC}], splitc, {'and', [{global_count, K}, {pg_total, pg, K}]}),
    S0 = pc(PC, ?MODULE, isolate, [MajNodes]),
    SMaj = collect_on(Maj, splitmaj),
    SC = collect_on([{PC, NC}], splitc),
    true = all_ok(SMaj ++ SC),
    SplitMs = ms(seen_max(SMaj ++ SC) - S0),
    {_, _} = pc(PA, ?MODULE, global_reg_seq, [split, split_a, 1, K]),
    {_, _} = pc(PC, ?MODULE, global_reg_seq, [split, split_c, 1, K]),
    {_, _} = pc(PA, ?MODULE, global_reg_seq, [clash, clash, 1, Kc]),
    {_, _} = pc(PC, ?MODULE, global_reg_seq, [clash, clash, 1, Kc]),
    ok = pc(PA, ?MODULE, pg_join_groups, [split, g, 100]),
    ok = pc(PC, ?MODULE, pg_join_groups, [split, g, 100]),
    %% the partition really held
    [false] = lists:usort([lists:member(NC, pc(P, erlang, nodes, [])) || {P, _} <- Maj]),
    [] = pc(PC, erlang, nodes, []),
    poll_on(Peers, healg, {global_count, 4 * K + Kc}),
    poll_on(Peers, healpg, {pg_total, pg, 4 * K}),
    {H0, _, _} = pc(PC, ?MODULE, heal, [MajNodes]),
    HG = collect_on(Peers, healg),
    HP = collect_on(Peers, healpg),
    true = all_ok(HG ++ HP),
    stop_cluster(Peers),
    [{split_cleanup_ms, SplitMs},
     {heal_full_convergence_ms, ms(seen_max(HG ++ HP) - H0)},
     {heal_names_convergence_ms, ms(seen_max(HG) - H0)},
     {heal_pg_convergence_ms, ms(seen_max(HP) - H0)}].

%% join every pid of Key to groups {Prefix, I rem NGroups}
pg_join_groups(Key, Prefix, NGroups) ->
    Pids = pids(Key),
    [ok = pg:join({Prefix, I rem NGroups}, element(I, Pids)) || I <- lists:seq(1, tuple_size(Pids))],
    ok.

%%====================================================================
%% nodedown: kill -9 the node that owns X names and Y memberships
%%====================================================================
nodedown(NNodes, X, Y) ->
    Peers = start_cluster(NNodes),
    {PC, _} = lists:last(Peers),
    Survivors = lists:droplast(Peers),
    ok = pc(PC, ?MODULE, spawn_idle, [names, X]),
    ok = pc(PC, ?MODULE, spawn_idle, [members, Y]),
    {_, _} = pc(PC, ?MODULE, global_reg_seq, [names, dn, 1, X]),
    ok = pc(PC, ?MODULE, pg_join_groups, [members, dn, 1000]),
    poll_on(Survivors, pre, {'and', [{global_count, X}, {pg_total, pg, Y}]}),
    true = all_ok(collect_on(Survivors, pre)),
    OsPid = pc(PC, ?MODULE, os_pid, []),
    poll_on(Survivors, downg, {global_count, 0}),
    poll_on(Survivors, downpg, {pg_groups, pg, 0}),
    T0 = now_ns(),
    _ = os:cmd("kill -9 " ++ OsPid),
    RG = collect_on(Survivors, downg),
    RP = collect_on(Survivors, downpg),
    true = all_ok(RG ++ RP),
    stop_cluster(Survivors),
    catch peer:stop(PC),
    [{cleanup_all_survivors_ms, ms(seen_max(RG ++ RP) - T0)},
     {cleanup_names_ms, ms(seen_max(RG) - T0)},
     {cleanup_pg_ms, ms(seen_max(RP) - T0)}].
