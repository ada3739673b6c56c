%% The BEAM side of `cohort bench interop_pg`: a node started with
%% `-s interop_bench serve` reads one command a line on stdin and answers
%% one line on stdout. Times are os:system_time(nanosecond), comparable with
%% the stamps of the cohort nodes on the same host.
%%
%%   connect NODE            -> true | false
%%   start_scope SCOPE       -> ok            (pg:start/1; `pg` runs already)
%%   spawn N                 -> ok            (N idle processes, kept)
%%   join SCOPE GROUP        -> joined T0 T1  (each kept process joins, one call each)
%%   wait SCOPE GROUP N MS   -> seen T | timeout COUNT
%%                              (until GROUP has N members; polled every ms)
%%   quit                    -> (halts)
-module(interop_bench).
-export([serve/0]).

serve() ->
    loop([]).

loop(Procs) ->
    case io:get_line("") of
        eof -> halt(0);
        {error, _} -> halt(1);
        Line ->
            Words = string:lexemes(string:trim(Line), " "),
            {Reply, Procs1} = command(Words, Procs),
            io:format("~s~n", [Reply]),
            loop(Procs1)
    end.

command(["connect", Node], Procs) ->
    {atom_to_list(net_kernel:connect_node(list_to_atom(Node))), Procs};
command(["start_scope", Scope], Procs) ->
    case pg:start(list_to_atom(Scope)) of
        {ok, _} -> {"ok", Procs};
        {error, {already_started, _}} -> {"ok", Procs};
        Other -> {io_lib:format("error ~p", [Other]), Procs}
    end;
command(["spawn", N], Procs) ->
    New = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, list_to_integer(N))],
    {"ok", New ++ Procs};
command(["join", Scope, Group], Procs) ->
    S = list_to_atom(Scope),
    G = list_to_atom(Group),
    T0 = os:system_time(nanosecond),
    [ok = pg:join(S, G, P) || P <- Procs],
    T1 = os:system_time(nanosecond),
    {io_lib:format("joined ~b ~b", [T0, T1]), Procs};
command(["wait", Scope, Group, N, Ms], Procs) ->
    Deadline = erlang:monotonic_time(millisecond) + list_to_integer(Ms),
    {wait(list_to_atom(Scope), list_to_atom(Group), list_to_integer(N), Deadline), Procs};
command(["quit"], _Procs) ->
    halt(0);
command(Other, Procs) ->
    {io_lib:format("error unknown command ~p", [Other]), Procs}.

wait(S, G, N, Deadline) ->
    Count = length(pg:get_members(S, G)),
    if
        Count >= N ->
            io_lib:format("seen ~b", [os:system_time(nanosecond)]);
        true ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true ->
                    io_lib:format("timeout ~b", [Count]);
                false ->
                    timer:sleep(1),
                    wait(S, G, N, Deadline)
            end
    end.
