{{ contract_select() }}
